"""DIN SPEC 70121 SECC (DC charging, External Payment): states (`state`), one module per
request family (`states/`), the transition table (`table`), timing (`timing`), conversions
(`convert`), DIN-only errors (`errors`) and `SPEC`."""
