"""Tables (`tables`: CSV + Markdown, shown in notebooks) and figures (`plots`, each with its caption)."""
