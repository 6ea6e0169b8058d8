"""Hand-written reference models, transcribed from the seed posts (tests compare against them)."""
