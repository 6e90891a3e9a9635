"""The claims suite machinery: generation cache, claim runner and run bookkeeping."""

#: the run folder's sub-folder where each worker writes its verdict rows and metadata
PARTS = "parts"
