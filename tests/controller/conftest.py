"""Fixtures shared by the controller's tests: `released` (a signed release made by sync, on
both forges) serves the trust tests and the forgery tests alike."""

from tests.controller.test_trust import released  # noqa: F401
