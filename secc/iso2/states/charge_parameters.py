"""ChargeParameterDiscoveryReq (ISO 15118-2 8.4.3.10): the car's limits in, the EVSE's limits
and the SAScheduleList out, with the configured tariff as each tuple's SalesTariff."""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any

from exi_schemas import iso2
from iso15118 import exi
from secc.context import Context, Outcome, PaymentOption, SessionData
from secc.errors import EnergyModeError, WrongChargeParameterError
from secc.evse import EnergyMode
from secc.iso2 import convert
from secc.iso2.state import State

R = iso2.responseCodeType
SA_SCHEDULE_TUPLE_ID = 1
_TYPES = "urn:iso:15118:2:2013:MsgDataTypes"

log = logging.getLogger(__name__)


@functools.cache
def _explain_unsigned() -> None:
    """Once per process: why Plug & Charge cars get no SalesTariff."""
    log.warning(
        "a tariff is configured but no sales_tariff_signer: Plug & Charge cars are sent no "
        "SalesTariff (ISO 15118-2 wants it signed in PnC [V2G2-905]); EIM cars get it unsigned"
    )


def add_sales_tariffs(schedules: iso2.SAScheduleListType, ctx: Context, data: SessionData) -> Any:
    """Give every SAScheduleTuple the configured tariff as its SalesTariff (in place) and
    return the header Signature, if any. In Plug & Charge the SalesTariff is signed by the
    configured signer, one reference per SalesTariff Id (the secondary actor signs it
    [V2G2-905]); without a signer a PnC car gets no SalesTariff (logged once). EIM sessions
    get it unsigned (no signature in the header of an EIM ChargeParameterDiscoveryRes). No
    tariff: no SalesTariff."""
    tariff = ctx.config.tariff
    if tariff is None:
        return None
    pnc = data.payment is PaymentOption.CONTRACT
    signer = ctx.config.sales_tariff_signer
    if pnc and signer is None:
        _explain_unsigned()
        return None
    signed: list[tuple[str, object]] = []
    for entry in schedules.SAScheduleTuple:
        ident = f"SalesTariff{entry.SAScheduleTupleID}"
        entry.SalesTariff = convert.sales_tariff(
            tariff,
            sales_tariff_id=entry.SAScheduleTupleID,
            duration=convert.schedule_end(entry.PMaxSchedule),
            ident=ident,
        )
        signed.append((ident, exi.Element(_TYPES, "SalesTariff", entry.SalesTariff)))
    if not pnc or signer is None:
        return None
    return signer.sign(signed)


def handle_charge_parameter_discovery(
    req: iso2.ChargeParameterDiscoveryReqType, ctx: Context, data: SessionData
) -> Outcome[State]:
    mode = EnergyMode(req.RequestedEnergyTransferMode.value)
    if mode not in ctx.energy_modes:
        raise EnergyModeError(f"{mode.value} is not offered by this EVSE")
    if data.energy_mode is not None and data.renegotiating and mode is not data.energy_mode:
        raise EnergyModeError("the energy transfer mode may not change in a renegotiation")
    limits = ctx.status.limits
    if mode.is_dc:
        ev = req.DC_EVChargeParameter
        if ev is None:
            raise WrongChargeParameterError("DC mode requested without DC_EVChargeParameter")
        max_voltage = convert.value(ev.EVMaximumVoltageLimit)
        max_current = convert.value(ev.EVMaximumCurrentLimit)
        max_power = convert.value(ev.EVMaximumPowerLimit, max_voltage * max_current)
        departure = ev.DepartureTime
        energy_request = None if ev.EVEnergyRequest is None else convert.value(ev.EVEnergyRequest)
    else:
        ac = req.AC_EVChargeParameter
        if ac is None:
            raise WrongChargeParameterError("AC mode requested without AC_EVChargeParameter")
        max_voltage = convert.value(ac.EVMaxVoltage)
        max_current = convert.value(ac.EVMaxCurrent)
        # EVMaxCurrent is per phase: the car draws it on each phase of the requested mode
        # at the EVSE's nominal (phase) voltage
        phases = 1 if mode is EnergyMode.AC_SINGLE_PHASE_CORE else 3
        max_power = limits.nominal_voltage * max_current * phases
        departure = ac.DepartureTime
        energy_request = convert.value(ac.EAmount)
    if max_voltage <= 0 or max_current <= 0:
        raise WrongChargeParameterError(
            f"EV maximum voltage {max_voltage} V / current {max_current} A must be positive"
        )
    if mode.is_dc and max_voltage < limits.min_voltage:
        raise WrongChargeParameterError(
            f"EV maximum voltage {max_voltage} V is below the EVSE minimum {limits.min_voltage} V"
        )
    new = dataclasses.replace(
        data,
        energy_mode=mode,
        ev_max_voltage=max_voltage,
        ev_max_current=max_current,
        ev_max_power=max_power,
        departure_time=departure,
        energy_request=energy_request,
        discovery_at=ctx.at,
        discovery_meter_wh=None if ctx.status.meter is None else ctx.status.meter.energy_wh,
        sa_schedule_tuple_id=SA_SCHEDULE_TUPLE_ID,
    )
    schedules = convert.sa_schedule_list(
        ctx, max_entries=req.MaxEntriesSAScheduleTuple, tuple_id=SA_SCHEDULE_TUPLE_ID
    )
    new = dataclasses.replace(new, offered_schedule=convert.offered_schedule(schedules))
    signature = add_sales_tariffs(schedules, ctx, data)
    response = iso2.ChargeParameterDiscoveryResType(
        ResponseCode=R.OK,
        EVSEProcessing=iso2.EVSEProcessingType.Finished,
        SAScheduleList=schedules,
    )
    if mode.is_dc:
        response.DC_EVSEChargeParameter = convert.dc_charge_parameter(ctx, new)
    else:
        response.AC_EVSEChargeParameter = convert.ac_charge_parameter(ctx, new)
    if data.renegotiating or not mode.is_dc:
        next_state = State.WAIT_POWER_DELIVERY
    else:
        next_state = State.WAIT_CABLE_CHECK
    return Outcome(response=response, next_state=next_state, data=new, signature=signature)
