"""The claims suite machinery: generation cache, claim runner and run bookkeeping."""
