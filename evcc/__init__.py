"""The EV simulator (EVCC): the car's side of DIN SPEC 70121 (DC) and ISO 15118-2 (AC and
DC; EIM and Plug & Charge), used by test labs against chargers and by our own SECC tests.

* `evcc.session.EvSession`: the sans-IO session core; `evcc.config.EvccConfig` its
  configuration; `evcc.events` what it reports; `evcc.faults` the conformance-test faults;
* `evcc.battery`: the battery model; `evcc.din`, `evcc.iso2`: the protocols as request
  tables, with their timing tables;
* `evcc.replay`: replay a recorded car from a capture;
* `evcc.client.run_ev`: the asyncio adapter (TCP/TLS, optional SDP discovery).
"""
