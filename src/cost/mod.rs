//! Hardware cost profiles (in progress).
