"""WhatsApp Cloud API simulator (a stand-in for Meta in local runs, tests and benchmarks)."""
