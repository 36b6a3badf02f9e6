"""One resource per section of the Amili docs, one method per documented operation."""

from .batches import Batches
from .collections import Collections
from .corrections import Corrections
from .invoices import Invoices
from .legacy import Legacy
from .payments import Payments
from .settlements import Settlements

__all__ = ["Batches", "Collections", "Corrections", "Invoices", "Legacy", "Payments", "Settlements"]
