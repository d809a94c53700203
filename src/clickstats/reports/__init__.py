"""The read side: one module per report, each a typed query in and a typed result out."""
