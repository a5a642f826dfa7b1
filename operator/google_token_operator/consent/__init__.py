"""Consent: how a Google account's grant reaches the operator.

- `api`: the operator's internal consent API, which spends the state, exchanges the code and
  stores the refresh token;
- `callback`: the internet-facing callback web app, which holds nothing and forwards what
  Google sent to the consent API;
- `workload` and `manager`: the callback Deployment the operator runs while consent is pending.

The pending consent and the callback's wire contract are plain data in `consent_state`.
"""
