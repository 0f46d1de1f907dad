"""The charger side (SECC, Supply Equipment Communication Controller), planned: sans-IO session
cores for DIN SPEC 70121, ISO 15118-2 and ISO 15118-20, plus a thin asyncio adapter."""
