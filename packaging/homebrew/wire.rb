# Homebrew formula: builds wire from source.
class Wire < Formula
  desc "Phone line for AI agents: paired, signed, end-to-end encrypted messaging"
  homepage "https://github.com/wire-agents/wire"
  url "https://github.com/wire-agents/wire/archive/refs/tags/v0.1.0.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000" # set at release
  license any_of: ["MIT", "Apache-2.0"]
  head "https://github.com/wire-agents/wire.git", branch: "main"

  depends_on "rust" => :build

  def install
    system "cargo", "install", "--locked", *std_cargo_args(path: "wire-cli")
    generate_completions_from_executable(bin/"wire", "completions")
    (man1/"wire.1").write Utils.safe_popen_read(bin/"wire", "man")
  end

  service do
    run [opt_bin/"wire", "daemon", "run"]
    keep_alive true
  end

  test do
    assert_match "wire #{version}", shell_output("#{bin}/wire --version")
    assert_match "paired", shell_output("#{bin}/wire demo")
  end
end
