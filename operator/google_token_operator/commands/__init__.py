"""The command line: `cli` parses and dispatches; `authorize`, `request_commands` (refresh,
reauthorize, revoke) and `status_command` wait on the operator through `waiting`."""
