"""Webhook notices as plain data: which URLs may be called, which transitions call for a notice,
what it says and when it is tried again (pure: the clock is passed in)."""
