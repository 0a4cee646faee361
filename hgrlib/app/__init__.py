"""What a user calls: the command line (`cli`), model export (`export`) and prediction on clips (`predict`)."""
