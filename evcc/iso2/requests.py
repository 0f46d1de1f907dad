"""ISO 15118-2 requests (except the Plug & Charge ones, in `evcc.iso2.pnc`), built from the
session data, one function per request."""

from __future__ import annotations

from typing import Any

from evcc.common import ChargeProgress, EvContext, physical_parts
from exi_schemas import iso2

__all__ = [
    "authorization",
    "cable_check",
    "charge_parameter_discovery",
    "charging_status",
    "current_demand",
    "metering_receipt",
    "payment_service_selection",
    "power_delivery",
    "pre_charge",
    "pv",
    "service_detail",
    "service_discovery",
    "session_setup",
    "session_stop",
    "welding_detection",
    "wrap",
]

U = iso2.unitSymbolType
AUTHORIZATION_ID = "ID1"
METERING_RECEIPT_ID = "ID2"


def pv(value: float, unit: iso2.unitSymbolType) -> iso2.PhysicalValueType:
    multiplier, number = physical_parts(value)
    return iso2.PhysicalValueType(Multiplier=multiplier, Unit=unit, Value=number)


def wrap(session_id: bytes, name: str, element: Any) -> iso2.V2G_Message:
    return iso2.V2G_Message(
        Header=iso2.MessageHeaderType(SessionID=session_id),
        Body=iso2.BodyType(**{name: element}),
    )


def _status(ctx: EvContext, *, ready: bool = True) -> iso2.DC_EVStatusType:
    return iso2.DC_EVStatusType(
        EVReady=ready,
        EVErrorCode=iso2.DC_EVErrorCodeType.NO_ERROR,
        EVRESSSOC=ctx.battery.soc_percent,
    )


def session_setup(ctx: EvContext) -> iso2.SessionSetupReqType:
    return iso2.SessionSetupReqType(EVCCID=ctx.config.evcc_id)


def service_discovery(ctx: EvContext) -> iso2.ServiceDiscoveryReqType:
    return iso2.ServiceDiscoveryReqType()


def service_detail(ctx: EvContext) -> iso2.ServiceDetailReqType:
    service = ctx.detail_queue[0] if ctx.detail_queue else ctx.charge_service_id
    return iso2.ServiceDetailReqType(ServiceID=service)


def payment_service_selection(ctx: EvContext) -> iso2.PaymentServiceSelectionReqType:
    selected = [iso2.SelectedServiceType(ServiceID=ctx.charge_service_id)]
    if ctx.certificate_service is not None:  # installation or update (machine.service_discovery)
        service, parameter_set = ctx.certificate_service
        selected.append(iso2.SelectedServiceType(ServiceID=service, ParameterSetID=parameter_set))
    return iso2.PaymentServiceSelectionReqType(
        SelectedPaymentOption=iso2.paymentOptionType(ctx.config.payment.value),
        SelectedServiceList=iso2.SelectedServiceListType(SelectedService=selected),
    )


def authorization(ctx: EvContext) -> iso2.AuthorizationReqType:
    """PnC with a GenChallenge: Id and GenChallenge, signed later; otherwise empty (EIM)."""
    if ctx.config.payment.value == "Contract" and ctx.gen_challenge is not None:
        return iso2.AuthorizationReqType(Id=AUTHORIZATION_ID, GenChallenge=ctx.gen_challenge)
    return iso2.AuthorizationReqType()


def _ac_parameter(ctx: EvContext) -> iso2.AC_EVChargeParameterType:
    b, c = ctx.battery, ctx.config
    return iso2.AC_EVChargeParameterType(
        DepartureTime=c.departure_time,
        EAmount=pv(b.energy_request_wh(c.target_soc), U.Wh),
        EVMaxVoltage=pv(b.params.max_voltage, U.V),
        EVMaxCurrent=pv(b.params.max_ac_current, U.A),
        EVMinCurrent=pv(b.params.min_ac_current, U.A),
    )


def _dc_parameter(ctx: EvContext) -> iso2.DC_EVChargeParameterType:
    b, c = ctx.battery, ctx.config
    return iso2.DC_EVChargeParameterType(
        DepartureTime=c.departure_time,
        DC_EVStatus=_status(ctx),
        EVMaximumCurrentLimit=pv(b.params.max_current, U.A),
        EVMaximumPowerLimit=pv(b.params.max_power, U.W),
        EVMaximumVoltageLimit=pv(b.params.max_voltage, U.V),
        EVEnergyCapacity=pv(b.params.capacity_wh, U.Wh),
        EVEnergyRequest=pv(b.energy_request_wh(c.target_soc), U.Wh),
        FullSOC=100,
        BulkSOC=int(c.battery.taper_soc),
    )


def charge_parameter_discovery(ctx: EvContext) -> iso2.ChargeParameterDiscoveryReqType:
    mode = ctx.config.energy_mode
    return iso2.ChargeParameterDiscoveryReqType(
        MaxEntriesSAScheduleTuple=ctx.config.max_schedule_entries,
        RequestedEnergyTransferMode=iso2.EnergyTransferModeType(mode.value),
        AC_EVChargeParameter=None if mode.is_dc else _ac_parameter(ctx),
        DC_EVChargeParameter=_dc_parameter(ctx) if mode.is_dc else None,
    )


def cable_check(ctx: EvContext) -> iso2.CableCheckReqType:
    return iso2.CableCheckReqType(DC_EVStatus=_status(ctx))


def pre_charge(ctx: EvContext) -> iso2.PreChargeReqType:
    return iso2.PreChargeReqType(
        DC_EVStatus=_status(ctx),
        EVTargetVoltage=pv(ctx.battery.open_circuit_voltage(), U.V),
        EVTargetCurrent=pv(2.0, U.A),
    )


def _profile(ctx: EvContext) -> iso2.ChargingProfileType | None:
    if not ctx.schedule:
        return None
    limit = ctx.battery.params.max_power
    if not ctx.config.energy_mode.is_dc:
        phases = 3 if ctx.config.energy_mode.value == "AC_three_phase_core" else 1
        limit = ctx.battery.params.max_ac_current * ctx.evse_nominal_voltage * phases
    entries = [
        iso2.ProfileEntryType(
            ChargingProfileEntryStart=start,
            ChargingProfileEntryMaxPower=pv(min(limit, pmax), U.W),
        )
        for start, pmax in ctx.schedule
    ]
    return iso2.ChargingProfileType(ProfileEntry=entries)


def power_delivery(ctx: EvContext) -> iso2.PowerDeliveryReqType:
    progress = ctx.charge_progress
    dc_parameter = None
    if ctx.config.energy_mode.is_dc:
        dc_parameter = iso2.DC_EVPowerDeliveryParameterType(
            DC_EVStatus=_status(ctx),
            BulkChargingComplete=ctx.battery.soc >= ctx.config.battery.taper_soc,
            ChargingComplete=progress is ChargeProgress.STOP,
        )
    return iso2.PowerDeliveryReqType(
        ChargeProgress=iso2.chargeProgressType(progress.value),
        SAScheduleTupleID=ctx.schedule_id,
        ChargingProfile=_profile(ctx) if progress is ChargeProgress.START else None,
        DC_EVPowerDeliveryParameter=dc_parameter,
    )


def charging_status(ctx: EvContext) -> iso2.ChargingStatusReqType:
    return iso2.ChargingStatusReqType()


def current_demand(ctx: EvContext) -> iso2.CurrentDemandReqType:
    b, c = ctx.battery, ctx.config
    current = b.target_current()
    remaining = b.remaining_seconds(c.target_soc, current * b.target_voltage())
    return iso2.CurrentDemandReqType(
        DC_EVStatus=_status(ctx),
        EVTargetCurrent=pv(current, U.A),
        EVMaximumVoltageLimit=pv(b.params.max_voltage, U.V),
        EVMaximumCurrentLimit=pv(b.params.max_current, U.A),
        EVMaximumPowerLimit=pv(b.params.max_power, U.W),
        BulkChargingComplete=b.soc >= c.battery.taper_soc,
        ChargingComplete=b.soc >= c.target_soc,
        RemainingTimeToFullSoC=pv(min(remaining, 32767.0 * 1000), U.s) if remaining else None,
        EVTargetVoltage=pv(b.target_voltage(), U.V),
    )


def metering_receipt(ctx: EvContext) -> iso2.MeteringReceiptReqType:
    signed = ctx.config.payment.value == "Contract"
    return iso2.MeteringReceiptReqType(
        Id=METERING_RECEIPT_ID if signed else None,
        SessionID=ctx.session_id,
        SAScheduleTupleID=ctx.schedule_id,
        MeterInfo=ctx.meter_info or iso2.MeterInfoType(MeterID="unknown"),
    )


def welding_detection(ctx: EvContext) -> iso2.WeldingDetectionReqType:
    return iso2.WeldingDetectionReqType(DC_EVStatus=_status(ctx, ready=False))


def session_stop(ctx: EvContext) -> iso2.SessionStopReqType:
    kind = iso2.chargingSessionType.Pause if ctx.pausing else iso2.chargingSessionType.Terminate
    return iso2.SessionStopReqType(ChargingSession=kind)
