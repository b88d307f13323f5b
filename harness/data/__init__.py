"""Where the datasets come from: sources and checksums, fetching, checking a data folder."""
