package graphfake

// Placeholder until drive.go exists (the sharepoint work replaces this file).
type driveStore struct{}

func (f *Fake) initDrives() {}
