"""What the passes and the consent service share at run time: the operator context
(`context`), the cluster view of watched objects (`cluster`), the writer of the operator's own
Secrets (`secrets`) and the Event sink (`events`)."""
