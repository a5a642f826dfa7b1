"""The consent callback: where Google sends the person back after the consent screen.

It is the one internet-facing part, so it holds no Kubernetes permissions and no secrets:
it hands what Google sent (state, code or error, scope) to the operator's internal consent
API, which validates and spends the state, exchanges the code and stores the refresh token,
and renders a page from the operator's answer. Nothing here ever shows or logs a code.
"""
