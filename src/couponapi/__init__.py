"""couponapi: hands out a limited coupon to a crowd, and never one too many."""
