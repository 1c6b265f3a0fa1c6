package domain

// Room is a validated room name such as "user-42", "sellers" or "global".
// Construct one with ParseRoom or the constructors; the zero Room is invalid.
type Room string

// String returns the room's wire name.
func (r Room) String() string { return string(r) }
