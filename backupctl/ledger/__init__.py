"""The ledger: the only module that talks SQL. Every decision is a row in Postgres."""

from backupctl.ledger.store import Claim, Ledger, NightSummary, connect_ledger

__all__ = ["Claim", "Ledger", "NightSummary", "connect_ledger"]
