package storage

// DefaultMasterKeyFileName is the key file's name, beside the data file, when
// [Options.MasterKeyFile] is empty.
const DefaultMasterKeyFileName = "master.key"
