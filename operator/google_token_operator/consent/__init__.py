"""Consent: how a Google account's grant reaches the operator.

- `pending`: the pending consent (hashed state, PKCE verifier, consent URL) and the pure
  choice between reusing the published URL and minting a new one;
- `api`: the operator's internal consent API, which spends the state, exchanges the code and
  stores the refresh token;
- `callback`: the internet-facing callback web app, which holds nothing and forwards what
  Google sent to the consent API;
- `contract`: what the callback and the consent API say to each other (one definition);
- `workload` and `manager`: the callback Deployment the operator runs while consent is pending.
"""
