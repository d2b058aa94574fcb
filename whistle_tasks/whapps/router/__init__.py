"""The router whapp (queue ``router``): where a call goes."""
