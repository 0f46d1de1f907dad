"""Public-key infrastructure for Plug & Charge (planned): certificate chains, trust stores,
contract certificate installation and the XML signatures of ISO 15118-2 and -20."""
