"""One module per request family of ISO 15118-2; each exposes pure handlers
`handle_x(request, ctx, data) -> Outcome`."""
