"""Consent as plain data, below both the consent service and the pure client decisions:

- `contract`: what the callback and the consent API say to each other (one definition);
- `pending`: the pending consent (hashed state, PKCE verifier, consent URL) and the pure
  choice between reusing the published URL and minting a new one.
"""
