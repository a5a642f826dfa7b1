"""Passes: read, decide, write — once per pass, for one GoogleClient and the Branches that use it.

- `client_pass`: one GoogleClient (refresh, private and consumer Secret, consent URL, status);
- `branch_pass`: its Branches (consumer Secrets, location checks, status);
- `deletion`: what happens when a GoogleClient or a Branch is deleted;
- `grants`: revoking a grant at Google.

What every pass shares (context, cluster view, Secret writer, Events) lives in `runtime`.

Gathering comes from what the watches already hold (no list calls), decisions from the pure
modules (clients, branches, policy, consent_state.pending), writes go through the edges, and only
when something changed.
"""
