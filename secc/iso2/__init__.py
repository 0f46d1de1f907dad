"""ISO 15118-2 SECC: states (`state`), one module per request family (`states/`), the
transition table (`table`), timing (`timing`), conversions (`convert`) and `SPEC`."""
