"""The notify whapp (queue ``notify``): what a person is told by mail (voicemail to e-mail)."""
