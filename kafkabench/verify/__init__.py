"""Delivery verification, as an observer: the producers' ledgers (`ledger`) against a read-back
of every partition (`readback`, in a child process), by `VerifyObserver` at the end of a run.

May import: everything below `kafkabench.runner` except the other features.

The public names of the flat module `kafkabench.verify` are re-exported here.
"""

from kafkabench.verify.ledger import COLUMNS, SEQ_VALUE_BYTES, Ledger, VerifyReport, seq_value
from kafkabench.verify.observer import INTERRUPTED_TIMEOUT_S, VerifyObserver
from kafkabench.verify.readback import BATCH, verify_delivery

__all__ = ["BATCH", "COLUMNS", "INTERRUPTED_TIMEOUT_S", "SEQ_VALUE_BYTES", "Ledger", "VerifyObserver",
           "VerifyReport", "seq_value", "verify_delivery"]
