fn main() {
    eprintln!("ordergate: the CLI arrives with the reactor issue");
    std::process::exit(2);
}
