"""The registrar whapp (queue ``registrar``): who may register, and where phones are."""
