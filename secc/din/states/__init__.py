"""One module per request family of DIN SPEC 70121; each exposes pure handlers
`handle_x(request, ctx, data) -> Outcome`."""
