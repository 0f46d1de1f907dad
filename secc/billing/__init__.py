"""Billing delivery: the durable outbox worker, payment processors, the operator commands.

* `secc.billing.backoff`: the retry delay after failed deliveries (pure);
* `secc.billing.outbox`: `DeliveryWorker`, which hands the billing records queued in the
  session store to the payment processors, at least once, with their idempotency keys;
* `secc.billing.webhook`: `WebhookProcessor`, a payment processor over HTTP (JSON, HMAC-signed);
* `secc.billing.config`: the ``billing:`` section of the SECC's YAML configuration;
* `secc.billing.commands`: ``iso15118 billing list|show|retry``.

Nothing is imported here, so that importing one module does not pull in the others (aiohttp
is loaded only by the webhook).
"""
