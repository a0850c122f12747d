"""The unit-code profile (一码全息): GET /codes/{unit_code}."""
