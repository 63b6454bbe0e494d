"""Outbound messaging shared by every service: queue a message, apply statuses, sync templates.

- `outbound.queue_message`: validate and store a message `queued`, dispatch after commit.
- `status.apply_status`: the monotonic status state machine (webhooks and the dispatcher).
- `templates.sync_templates`: fetch the WABA's templates into `message_templates`.
- `relay.relay_unhanded_messages`: hand over queued messages a crash left behind.
"""
