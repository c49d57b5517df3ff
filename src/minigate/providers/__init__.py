"""Provider connectors, one package each, all with the same shape (see ``base``)."""
