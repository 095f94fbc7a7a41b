"""The `MetaData` every subsystem declares its tables on (each in its own module)."""
from sqlalchemy import MetaData

metadata = MetaData()
