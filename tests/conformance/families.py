"""The per-message test families, generated from one table row per (protocol, message):

* good case: no fault; the SECC's first answer to the message carries `good_code` and the
  whole session completes with OK answers;
* sequence error: the tester sends `seq_send` instead of the message; the SECC answers with
  the response type of the request actually sent, FAILED_SequenceError, and closes;
* unknown session: the message with a foreign SessionID → FAILED_UnknownSession, closed;
* sequence timeout: the tester stays silent where the message is due (after the SECC's
  response to the request before it); the SECC closes exactly 60 s after that response
  with a TIMEOUT billing record (ISO 15118-4 names this case after the awaited message);
* malformed EXI: undecodable bytes instead of the message; no answer, the session ends with
  a PROTOCOL_ERROR record, nothing raises.

Each kind's case ID is given explicitly in the row (None: the kind does not apply).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kit import (
    Case,
    ConformancePair,
    Env,
    Scenario,
    Source,
    assert_completed,
    assert_failed_and_closed,
    assert_protocol_error,
    assert_sequence_timeout,
    build,
    run,
)

from evcc.faults import MalformedExi, OutOfSequence, Silence, WrongSessionId
from secc.records import StopReason

Check = Callable[[ConformancePair], None]
Ids = tuple[str | None, Source]


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    message: str  # the request element, e.g. "CableCheckReq"
    prefix: str  # "TC_SECC_DC_VTB_CableCheck"
    scenario: Scenario
    protocol: str = "iso2"
    occurrence: int = 1  # which sending of the message the faults hit
    good: Ids = (None, Source.ATS)
    good_code: str = "OK"
    good_check: Check | None = None
    seq: Ids = (None, Source.ATS)
    seq_send: str = "ServiceDiscoveryReq"
    session: Ids = (None, Source.ATS)
    timeout: Ids = (None, Source.ATS)
    malformed: Ids = ("101", Source.OWN)
    label: str = ""  # told in the titles, e.g. "Stop" for the second PowerDeliveryReq

    @property
    def name(self) -> str:
        return self.message.removesuffix("Req")


def _id(family: Family, number: str) -> str:
    return f"{family.prefix}_{number}"


def _good(f: Family) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        pair = run(f.scenario, env)
        assert_completed(pair)
        answers = pair.answers_to(f.message)
        assert len(answers) >= f.occurrence, [e.request_name for e in pair.exchanges]
        assert answers[f.occurrence - 1].response_code == f.good_code, answers[0]
        if f.good_check is not None:
            f.good_check(pair)

    return check


def _sequence(f: Family) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        fault = OutOfSequence(message=f.message, send=f.seq_send, occurrence=f.occurrence)
        pair = run(f.scenario, env, faults=(fault,))
        assert_failed_and_closed(pair, f.seq_send, "FAILED_SequenceError")

    return check


def _session(f: Family) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        fault = WrongSessionId(message=f.message, occurrence=f.occurrence)
        pair = run(f.scenario, env, faults=(fault,))
        assert_failed_and_closed(
            pair, f.message, "FAILED_UnknownSession", reason=StopReason.PROTOCOL_ERROR
        )
        assert pair.ended is not None

    return check


def before(f: Family, env: Env) -> tuple[str, int, int]:
    """From a fault-free run: (the request answered just before the message is due, which
    sending of it that is, how many answers precede the message)."""
    pair = build(f.scenario, env)
    pair.run()
    seen = 0
    for index, exchange in enumerate(pair.exchanges):
        if exchange.request_name == f.message:
            seen += 1
            if seen == f.occurrence:
                previous = pair.exchanges[index - 1].request_name
                count = [e.request_name for e in pair.exchanges[:index]].count(previous)
                return previous, count, index
    raise AssertionError(f"{f.message} #{f.occurrence} never sent")


def _timeout(f: Family) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        previous, count, answered = before(f, env)
        pair = run(f.scenario, env, faults=(Silence(message=previous, occurrence=count),))
        assert len(pair.exchanges) == answered
        assert pair.exchanges[-1].request_name == previous
        assert_sequence_timeout(pair)

    return check


def _malformed(f: Family) -> Callable[[Env], None]:
    def check(env: Env) -> None:
        _previous, _count, answered = before(f, env)
        pair = run(
            f.scenario, env, faults=(MalformedExi(message=f.message, occurrence=f.occurrence),)
        )
        assert_protocol_error(pair, answered=answered)

    return check


def family_cases(f: Family) -> list[Case]:
    kinds: list[tuple[Ids, str, Callable[[Family], Callable[[Env], None]]]] = [
        (f.good, f"good case: {f.name}Res {f.good_code}", _good),
        (f.seq, f"{f.seq_send} instead of {f.message}: FAILED_SequenceError, closed", _sequence),
        (
            f.session,
            f"{f.message} with an unknown SessionID: FAILED_UnknownSession, closed",
            _session,
        ),
        (
            f.timeout,
            f"silence where {f.message} is due: closed after the 60 s sequence timeout",
            _timeout,
        ),
        (
            f.malformed,
            f"malformed EXI instead of {f.message}: session ended, no answer",
            _malformed,
        ),
    ]
    cases = []
    for (number, source), title, make in kinds:
        if number is not None:
            title = f"{title} ({f.label})" if f.label else title
            cases.append(Case(_id(f, number), title, source, make(f), protocol=f.protocol))
    return cases
