"""DIN SPEC 70121 requests, built from the session data (one function per request)."""

from __future__ import annotations

from typing import Any

from evcc.common import ChargeProgress, EvContext, physical_parts
from exi_schemas import din

__all__ = [
    "cable_check",
    "charge_parameter_discovery",
    "contract_authentication",
    "current_demand",
    "power_delivery",
    "pre_charge",
    "pv",
    "service_discovery",
    "service_payment_selection",
    "session_setup",
    "session_stop",
    "welding_detection",
    "wrap",
]


def pv(value: float, unit: din.unitSymbolType) -> din.PhysicalValueType:
    multiplier, number = physical_parts(value)
    return din.PhysicalValueType(Multiplier=multiplier, Unit=unit, Value=number)


def wrap(session_id: bytes, name: str, element: Any) -> din.V2G_Message:
    return din.V2G_Message(
        Header=din.MessageHeaderType(SessionID=session_id),
        Body=din.BodyType(**{name: element}),
    )


def _status(ctx: EvContext, *, ready: bool = True) -> din.DC_EVStatusType:
    return din.DC_EVStatusType(
        EVReady=ready,
        EVErrorCode=din.DC_EVErrorCodeType.NO_ERROR,
        EVRESSSOC=ctx.battery.soc_percent,
    )


def session_setup(ctx: EvContext) -> din.SessionSetupReqType:
    return din.SessionSetupReqType(EVCCID=ctx.config.evcc_id)


def service_discovery(ctx: EvContext) -> din.ServiceDiscoveryReqType:
    return din.ServiceDiscoveryReqType(ServiceCategory=din.serviceCategoryType.EVCharging)


def service_payment_selection(ctx: EvContext) -> din.ServicePaymentSelectionReqType:
    return din.ServicePaymentSelectionReqType(
        SelectedPaymentOption=din.paymentOptionType.ExternalPayment,
        SelectedServiceList=din.SelectedServiceListType(
            SelectedService=[din.SelectedServiceType(ServiceID=ctx.charge_service_id)]
        ),
    )


def contract_authentication(ctx: EvContext) -> din.ContractAuthenticationReqType:
    return din.ContractAuthenticationReqType()  # [V2G-DC-545], [V2G-DC-550]: no Id, no challenge


def charge_parameter_discovery(ctx: EvContext) -> din.ChargeParameterDiscoveryReqType:
    b, c = ctx.battery, ctx.config
    parameter = din.DC_EVChargeParameterType(
        DC_EVStatus=_status(ctx),
        EVMaximumCurrentLimit=pv(b.params.max_current, din.unitSymbolType.A),
        EVMaximumPowerLimit=pv(b.params.max_power, din.unitSymbolType.W),
        EVMaximumVoltageLimit=pv(b.params.max_voltage, din.unitSymbolType.V),
        EVEnergyCapacity=pv(b.params.capacity_wh, din.unitSymbolType.Wh),
        EVEnergyRequest=pv(b.energy_request_wh(c.target_soc), din.unitSymbolType.Wh),
        FullSOC=100,
        BulkSOC=int(c.battery.taper_soc),
    )
    return din.ChargeParameterDiscoveryReqType(
        EVRequestedEnergyTransferType=din.EVRequestedEnergyTransferType(c.energy_mode.value),
        DC_EVChargeParameter=parameter,
    )


def cable_check(ctx: EvContext) -> din.CableCheckReqType:
    return din.CableCheckReqType(DC_EVStatus=_status(ctx))


def pre_charge(ctx: EvContext) -> din.PreChargeReqType:
    return din.PreChargeReqType(
        DC_EVStatus=_status(ctx),
        EVTargetVoltage=pv(ctx.battery.open_circuit_voltage(), din.unitSymbolType.V),
        EVTargetCurrent=pv(2.0, din.unitSymbolType.A),
    )


def _profile(ctx: EvContext) -> din.ChargingProfileType | None:
    if not ctx.schedule:
        return None
    limit = ctx.battery.params.max_power
    entries = [
        din.ProfileEntryType(
            ChargingProfileEntryStart=start,
            ChargingProfileEntryMaxPower=min(32767, int(min(limit, pmax))),
        )
        for start, pmax in ctx.schedule
    ]
    return din.ChargingProfileType(SAScheduleTupleID=ctx.schedule_id, ProfileEntry=entries)


def power_delivery(ctx: EvContext) -> din.PowerDeliveryReqType:
    start = ctx.charge_progress is ChargeProgress.START
    return din.PowerDeliveryReqType(
        ReadyToChargeState=start,
        ChargingProfile=_profile(ctx) if start else None,
        DC_EVPowerDeliveryParameter=din.DC_EVPowerDeliveryParameterType(
            DC_EVStatus=_status(ctx),
            BulkChargingComplete=ctx.battery.soc >= ctx.config.battery.taper_soc,
            ChargingComplete=not start,
        ),
    )


def current_demand(ctx: EvContext) -> din.CurrentDemandReqType:
    b, c = ctx.battery, ctx.config
    current = b.target_current()
    remaining = b.remaining_seconds(c.target_soc, current * b.target_voltage())
    return din.CurrentDemandReqType(
        DC_EVStatus=_status(ctx),
        EVTargetCurrent=pv(current, din.unitSymbolType.A),
        EVMaximumVoltageLimit=pv(b.params.max_voltage, din.unitSymbolType.V),
        EVMaximumCurrentLimit=pv(b.params.max_current, din.unitSymbolType.A),
        EVMaximumPowerLimit=pv(b.params.max_power, din.unitSymbolType.W),
        BulkChargingComplete=b.soc >= c.battery.taper_soc,
        ChargingComplete=b.soc >= c.target_soc,
        RemainingTimeToFullSoC=(
            pv(min(remaining, 32767.0 * 1000), din.unitSymbolType.s) if remaining else None
        ),
        EVTargetVoltage=pv(b.target_voltage(), din.unitSymbolType.V),
    )


def welding_detection(ctx: EvContext) -> din.WeldingDetectionReqType:
    return din.WeldingDetectionReqType(DC_EVStatus=_status(ctx, ready=False))


def session_stop(ctx: EvContext) -> din.SessionStopType:
    return din.SessionStopType()
