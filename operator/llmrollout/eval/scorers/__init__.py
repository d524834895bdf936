"""Scorers, one module each behind base.Scorer; factory is the only place that knows them all."""
