"""The r-MDP environments; each module holds one family."""
