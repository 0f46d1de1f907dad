"""The asyncio edge: sockets and network interfaces around the sans-IO protocol cores.

Each module is imported on its own (`iso15118.transport.sdp_server`, ...); this package imports
nothing, so using one adapter never loads the others. `netif` maps an interface name to its
index and IPv6 link-local address; `sdp_server` and `sdp_client` run the SECC Discovery Protocol
of `iso15118.sdp` over UDP; `tcp` and `tls` carry V2GTP streams.
"""
