"""Decode one captured ISO 15118-2 message and print it as JSON.

The bytes are a CurrentDemandReq that a Polestar 2 sent to an EVerest/Josev DC charger
(EVerest/logfiles, Polestar/Polestar2/iso15118-2_DC/...-polestar2-Josev-iso-2-DC), with the
8-byte V2GTP header already stripped.
"""

import json

from iso15118 import exi

CURRENT_DEMAND_REQ = bytes.fromhex(
    "8098023c3972d3a397e82d50d1002e810601401881ac06010614c3a2801841a1180223103500c0"
)


def main() -> None:
    message = exi.decode("iso2", CURRENT_DEMAND_REQ)
    print(json.dumps(exi.to_json(message), indent=2))


if __name__ == "__main__":
    main()
