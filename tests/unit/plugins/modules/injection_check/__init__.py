"""Package marker: keeps this test module distinct from tests/integration/test_injection_check.py."""
