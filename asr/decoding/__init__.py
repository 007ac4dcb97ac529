"""From log-probabilities to words: greedy and beam search, n-gram LMs, lexicons, LM weight tuning."""
