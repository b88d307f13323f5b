"""What a run writes and reads back: result records, the run folder, the prediction cache."""
