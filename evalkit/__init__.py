"""evalkit: evaluate early childhood development partnership programmes, region by region."""

__version__ = "0.1.0"
