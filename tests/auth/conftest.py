from tests.contacts.conftest import api

__all__ = ["api"]
