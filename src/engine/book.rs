//! The embedded price-time priority matching engine (placeholder: being written).
