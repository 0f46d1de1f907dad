"""The ``billing:`` section of the SECC's YAML configuration.

::

    billing:
      processor:                       # absent: secc.payment:FreeProcessor (free charging)
        class: "secc.billing.webhook:WebhookProcessor"
        options: {url: "https://billing.example.com/v1/records", secret_file: webhook.secret}
      retry: {initial: 2, max: 600, factor: 2, jitter: 0.1}   # back-off, seconds
      poll_interval: 5                 # how often the outbox looks for work done elsewhere
      timeout: 30                      # the longest one settle call may take, seconds

Options are passed to the class as keyword arguments; an option whose name ends in ``_file``
is a path relative to the configuration file's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iso15118.yamlconf import ConfigError, Section
from secc.billing.backoff import Backoff
from secc.billing.outbox import DeliveryWorker, OutboxStore
from secc.evse import load_plugin
from secc.payment import PaymentProcessor

__all__ = [
    "DEFAULT_PROCESSOR",
    "BillingConfig",
    "build_processor",
    "build_worker",
    "read_billing_section",
]

DEFAULT_PROCESSOR = "secc.payment:FreeProcessor"


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingConfig:
    processor_class: str = DEFAULT_PROCESSOR
    processor_options: Mapping[str, Any] = field(default_factory=dict)
    backoff: Backoff = field(default_factory=Backoff)
    poll_interval: float = 5.0
    timeout: float = 30.0
    #: a live session's meter reading is persisted (for billing after a crash, see
    #: secc.recovery) every this many seconds or Wh of energy, whichever comes first
    meter_save_interval: float = 10.0
    meter_save_wh: int = 100


def _positive(section: Section, key: str, default: float) -> float:
    value = section.number(key, default)
    if not value > 0:
        raise ConfigError(f"billing.{key}: must be > 0, got {value:g}")
    return value


def read_billing_section(section: Section) -> BillingConfig:
    """Read (and check) a ``billing:`` section; ConfigError names a bad key."""
    processor = section.section("processor")
    processor_class = processor.string("class", DEFAULT_PROCESSOR) or DEFAULT_PROCESSOR
    options = processor.mapping("options")
    processor.done()
    for key, value in options.items():
        if isinstance(key, str) and key.endswith("_file") and isinstance(value, str):
            path = Path(value).expanduser()
            options[key] = str(path if path.is_absolute() else section.base / path)
    retry = section.section("retry")
    try:
        backoff = Backoff(
            initial=retry.number("initial", 2.0),
            maximum=retry.number("max", 600.0),
            factor=retry.number("factor", 2.0),
            jitter=retry.number("jitter", 0.1),
        )
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"billing.retry: {exc}") from None
    retry.done()
    config = BillingConfig(
        processor_class=processor_class,
        processor_options=options,
        backoff=backoff,
        poll_interval=_positive(section, "poll_interval", 5.0),
        timeout=_positive(section, "timeout", 30.0),
        meter_save_interval=_positive(section, "meter_save_interval", 10.0),
        meter_save_wh=section.integer("meter_save_wh", 100, low=1, high=1_000_000) or 100,
    )
    section.done()
    return config


def build_processor(config: BillingConfig) -> PaymentProcessor:
    """Import and build the configured processor; ValueError (a ConfigError) if it cannot."""
    try:
        processor: PaymentProcessor = load_plugin(
            config.processor_class,
            PaymentProcessor,
            "payment processor",
            dict(config.processor_options),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"billing.processor: {exc}") from None
    return processor


def build_worker(
    config: BillingConfig,
    store: OutboxStore,
    processors: Mapping[str, PaymentProcessor] | PaymentProcessor,
    **overrides: Any,
) -> DeliveryWorker:
    """A `DeliveryWorker` with the configured back-off, timeout and poll interval; one
    processor is served under its `name`. `overrides` go to the worker (clock, random)."""
    if isinstance(processors, PaymentProcessor):
        processors = {processors.name: processors}
    return DeliveryWorker(
        store,
        processors,
        backoff=config.backoff,
        timeout=config.timeout,
        poll_interval=config.poll_interval,
        **overrides,
    )
