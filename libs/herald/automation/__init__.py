"""Automation definitions and the time arithmetic shared by the automation service and its jobs.

- `definitions`: the validated JSON shape of an automation (trigger, conditions, actions).
- `keywords`: accent- and case-insensitive inbound keyword matching.
- `local_time`: birthdays, date fields, quiet hours and waits in each contact's time zone.
- `settings`: the HERALD_AUTOMATION_* environment variables.
"""
